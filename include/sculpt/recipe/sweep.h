// Sweep: the typed form of a sweep YAML. A sweep names stages (e.g. fine-tune the teacher,
// then prune from the teacher's best), the tasks, and per stage a grid of overrides crossed
// with named variants (method recipes). Every combination is a cell: one run directory with a
// stable name, <output_root>/<name>/<stage>/<task>/<cell>, whose own outputs say whether it is
// done. Loading validates every cell's recipe, so a typo fails before anything runs.
//
//   sweep:
//     name: minilm_glue
//     output_root: runs/sweeps
//     records: results/minilm_glue/cells   # optional: every finished cell's small record, as it finishes
//     tasks: [rte, mrpc]
//     task_overrides: {cola: [data.max_seq_len=64]}
//     stages:
//       - name: teacher
//         recipe: recipes/minilm/finetune.yaml
//         grid: {run.seed: [42]}
//       - name: prune
//         from: teacher              # model.path := <teacher cell of the same task>/best
//         distill_from: teacher      # (optional) distill.teacher := <that stage's cell of the task>/best
//         compare_to: teacher        # (optional, instead) the dense cell the table measures it against, when
//                                    # model.path is not that cell (a pretrained model compressed before fine-tuning)
//         grid: {run.seed: [1, 2, 3]}
//         variants:
//           sp3:  {recipe: recipes/minilm/sp3.yaml,  grid: {prune.target: [0.09, 0.25]}}
//           cofi: {recipe: recipes/minilm/cofi.yaml, grid: {prune.target: [0.6, 0.95]}}
#pragma once
#include <map>
#include <string>
#include <vector>

namespace sculpt::recipe {

struct SweepCell {
  std::string stage, task, variant;
  std::string name;    // "<variant>_<key>-<value>_..." from the variant and the grid values
  std::string dir;     // its run directory
  std::string recipe;  // the recipe file it runs
  std::vector<std::string> overrides;         // everything passed to `sculpt run` after the recipe
  std::map<std::string, std::string> params;  // grid key -> value (as written in the sweep)
  int from = -1;       // index of the cell whose best/ it starts from (-1: none)
  int teacher = -1;    // index of the cell it distils from (distill_from) or is compared to (compare_to); -1: none
  bool prunes = false;
  std::string record;  // its record file under the sweep's `records:` ("" when the sweep keeps none)
  // The file the run writes last: compression.json for a pruning recipe, else results.json.
  std::string done_file() const;
  // The cells that must be done before this one starts.
  std::vector<int> upstream() const {
    std::vector<int> u;
    for (int i : {from, teacher})
      if (i >= 0) u.push_back(i);
    return u;
  }
};

struct Sweep {
  std::string source;  // the sweep file
  std::string name, dir;
  // `records:` (optional): where each finished cell's record (metrics/results_table.h) is written
  // as it finishes, e.g. results/<name>/cells, so that committed results outlive runs/.
  std::string records;
  std::vector<std::string> tasks, stages;
  // Stage by stage (upstream cells first); within a stage the stage's grid slowest, then task,
  // variant and the variant's grid.
  std::vector<SweepCell> cells;
};

// Parse and validate (every cell's recipe is loaded with its overrides); errors name the
// sweep file, line and key, or the cell and the recipe's own error.
Sweep parse_sweep(const std::string& yaml_text, const std::string& source);
Sweep load_sweep(const std::string& path);

// The cells of `stage` (all stages when empty), `tasks` and `variants` (all when empty), in
// sweep order, with the upstream cells they start from or are measured against, so that
// `sculpt sweep --tasks rte,mrpc --variants sp3` runs the small tasks' extra SP3 seeds first. An
// unknown stage, task or variant is refused, naming the sweep file and what it has.
std::vector<int> select_cells(const Sweep& sweep, const std::string& stage, const std::vector<std::string>& tasks,
                              const std::vector<std::string>& variants = {});

// recorded: never started here (no run directory) but its record exists: its results are kept
// (results/<sweep>/cells), its model is not.
enum class CellState { fresh, interrupted, done, recorded };
// done: its done_file exists; interrupted: it has started (recipe.resolved.yaml); recorded: its
// record exists; else fresh.
CellState cell_state(const SweepCell& cell);

// Which of `selected` (in sweep order) have to run: each one that is fresh or interrupted, and
// each one not done that such a cell of `consumers` starts from or is measured against — a
// record keeps a cell's results, not the model a later cell needs. So after runs/ is lost, a
// sweep re-runs only the teachers its missing cells start from.
std::vector<int> cells_to_run(const Sweep& sweep, const std::vector<int>& selected, const std::vector<int>& consumers);
const char* to_string(CellState s);

// What the cells `to_run` read that they do not make themselves, so that they can run on
// another machine (scripts/gpu_sweep.sh packs it): the done upstream cells (their small files
// mark them done there), the model directories (model.path, model.tokenizer, distill.teacher)
// outside the to-run cells, and the data (a GLUE task's folder under data.root, as the recipe
// writes it: "${SCULPT_DATA}/glue/RTE"; else train_file and dev_file). Each once, sorted.
struct SweepInputs {
  std::vector<std::string> cells, models, data;
};
SweepInputs sweep_inputs(const Sweep& sweep, const std::vector<int>& to_run);

// What cell `cell` reads that is not there and that no cell of `to_run` makes, one
// "key path" each ("model.path runs/ofa_minilm_mlm_teacher/best"): the sweep refuses such a
// cell before it starts, instead of after a child process failed on it.
std::vector<std::string> missing_inputs(const Sweep& sweep, int cell, const std::vector<int>& to_run);

// Where `sculpt sweep --jobs N` runs its cells. On G visible GPUs, at most G * per_gpu cells at
// once, slot s on GPU s % G (small models leave most of a GPU idle: 8 MiniLM cells shared one
// H200, about 2 minutes each; one alone was not timed); CPU threads are shared out among all N.
struct SweepSlots {
  int jobs = 1;     // cells at once
  int threads = 0;  // run.threads per cell; 0: the run's own default
  int gpus = 0;     // visible GPUs (0: CPU)
};
SweepSlots plan_sweep_slots(int jobs, int gpus, int per_gpu, int cores);
// CUDA_VISIBLE_DEVICES for slot `slot`: its GPU's entry of the sweep's own CUDA_VISIBLE_DEVICES
// (`parent`, as a scheduler set it; null or empty: all devices, numbered from 0).
std::string cuda_visible_device(int slot, int gpus, const char* parent);

}  // namespace sculpt::recipe
