// sculpt sweep: run the cells of a sweep (recipe/sweep.h) as child `sculpt run` / `sculpt
// resume` processes, N at a time, each on a GPU (up to --jobs-per-gpu K on one) or a share of
// the CPU threads; skip the done ones, resume the interrupted ones, start a cell only when the
// cell it starts from is done. A stop signal (Ctrl-C, SIGTERM, SIGUSR1) is passed on to the
// running cells, which checkpoint and exit; running the sweep again continues. --slurm writes
// sbatch array jobs; --inputs lists what the cells to run read (scripts/gpu_sweep.sh packs it).
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <map>
#include <numeric>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "args.h"
#include "commands.h"
#include "sculpt/core/signals.h"
#include "sculpt/io/files.h"
#include "sculpt/metrics/results_table.h"
#include "sculpt/recipe/sweep.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace sculpt::cli {
namespace {

volatile std::sig_atomic_t g_interrupt = 0;
extern "C" void on_interrupt(int) { g_interrupt = 1; }

bool stopping() { return g_interrupt || stop_requested(); }

std::string hms(double seconds) {
  const auto s = static_cast<long long>(seconds);
  return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
}

std::string cell_id(const recipe::SweepCell& c) { return c.stage + "/" + c.task + "/" + c.name; }

// What the table reads besides the run's own files: which stage, task, variant and grid
// point the directory is.
void write_cell_json(const recipe::Sweep& sweep, const recipe::SweepCell& c) {
  nlohmann::json j = {{"sweep", sweep.name}, {"stage", c.stage}, {"task", c.task}, {"variant", c.variant},
                      {"name", c.name},      {"params", c.params}, {"recipe", c.recipe}, {"overrides", c.overrides}, {"prunes", c.prunes}};
  if (c.from >= 0) j["from"] = sweep.cells[c.from].dir;
  if (c.teacher >= 0) j["teacher"] = sweep.cells[c.teacher].dir;
  fs::create_directories(c.dir);
  io::write_file_atomic((fs::path(c.dir) / "sweep_cell.json").string(), j.dump(2) + "\n");
}

// argv of the child: resume when the cell has started, else run; output into <cell>/sweep.log.
pid_t launch(const std::string& exe, const recipe::Sweep& sweep, const recipe::SweepCell& c, int threads, const std::string& gpu) {
  write_cell_json(sweep, c);
  std::vector<std::string> argv{exe};
  if (recipe::cell_state(c) == recipe::CellState::interrupted) {
    argv.insert(argv.end(), {"resume", c.dir});
  } else {
    argv.insert(argv.end(), {"run", c.recipe});
    argv.insert(argv.end(), c.overrides.begin(), c.overrides.end());
  }
  argv.push_back("logging.progress_bar=off");
  if (threads > 0) argv.push_back(fmt::format("run.threads={}", threads));
  const std::string log = (fs::path(c.dir) / "sweep.log").string();
  pid_t pid = fork();
  SCULPT_CHECK(pid >= 0, "sweep: cannot fork for {}", cell_id(c));
  if (pid == 0) {
    setpgid(0, 0);  // Ctrl-C reaches the sweep only; it asks the cells to checkpoint
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    if (!gpu.empty()) setenv("CUDA_VISIBLE_DEVICES", gpu.c_str(), 1);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    // The sweep's own binary, even after a rebuild has replaced the file (its path then reads
    // "... (deleted)"): every cell of one sweep process runs the same program.
    execv("/proc/self/exe", cargv.data());
    _exit(127);
  }
  return pid;
}

struct Running {
  int cell;
  pid_t pid;
  int slot;
  Clock::time_point start;
};

// The cell's small record under sweep.records (metrics/results_table.h), so that the results a
// session commits outlive runs/; `sculpt table` adds the speedups later.
void record_cell(const recipe::Sweep& sweep, const recipe::SweepCell& c, bool overwrite) {
  if (c.record.empty() || (!overwrite && fs::exists(c.record))) return;
  try {
    if (auto r = metrics::read_cell(sweep.dir, c.dir)) metrics::write_record(*r, sweep.records);  // to c.record
  } catch (const std::exception& e) {
    std::printf("[sweep] no record for %s: %s\n", c.dir.c_str(), e.what());
  }
}

// Run the cells of `todo` (cell indices) that recipe::cells_to_run picks for `consumers`; returns
// the number of failed cells. Upstream cells not in `todo` must already be done.
int run_cells(const recipe::Sweep& sweep, const std::vector<int>& todo, const std::vector<int>& consumers, int max_jobs,
              int per_gpu) {
  const std::string exe = fs::read_symlink("/proc/self/exe").string();
  const auto plan = recipe::plan_sweep_slots(max_jobs, torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0,
                                             per_gpu, static_cast<int>(std::thread::hardware_concurrency()));
  const int jobs = plan.jobs, gpus = plan.gpus, threads = plan.threads;
  const char* parent_visible = std::getenv("CUDA_VISIBLE_DEVICES");

  std::map<int, std::string> failed;  // cell -> why
  std::vector<int> pending = recipe::cells_to_run(sweep, todo, consumers);
  // A cell whose model or data is not there and that no cell here makes would only fail in its
  // child process: refuse it now and run the others.
  for (int i : pending)
    if (const auto missing = recipe::missing_inputs(sweep, i, pending); !missing.empty())
      failed[i] = fmt::format("cannot start: {} {} not there and no cell of this sweep makes {}", fmt::join(missing, ", "),
                              missing.size() == 1 ? "is" : "are", missing.size() == 1 ? "it" : "them");
  std::erase_if(pending, [&](int i) { return failed.count(i) > 0; });
  int done = 0, kept = 0, rerun = 0;  // recorded cells: kept (count as done) or run again
  for (int i : todo) {
    if (failed.count(i)) continue;
    const auto state = recipe::cell_state(sweep.cells[i]);
    if (state == recipe::CellState::done) {
      ++done;
      record_cell(sweep, sweep.cells[i], /*overwrite=*/false);
    } else if (state == recipe::CellState::recorded) {
      if (std::find(pending.begin(), pending.end(), i) != pending.end()) {
        ++rerun;
      } else {
        ++done;
        ++kept;
      }
    }
  }
  const int total = static_cast<int>(todo.size());
  std::printf("[sweep] %s: %d cells, %d done, %d to run (%d at a time%s)\n", sweep.name.c_str(), total, done,
              static_cast<int>(pending.size()), jobs,
              gpus > 0 ? fmt::format(", on {} GPU(s), at most {} a GPU, {} threads each", gpus, per_gpu, std::max(threads, 1)).c_str()
                       : threads > 0 ? fmt::format(", {} threads each", threads).c_str() : "");
  for (const auto& [i, why] : failed) std::printf("[sweep] %s %s\n", cell_id(sweep.cells[i]).c_str(), why.c_str());  // the refused
  if (kept + rerun > 0)
    std::printf("[sweep] %d cells have only their record in %s (no run directory): %d count as done, %d run again for the "
                "model a later cell starts from\n",
                kept + rerun, sweep.records.c_str(), kept, rerun);
  std::fflush(stdout);

  std::signal(SIGINT, on_interrupt);
  install_stop_signal_handlers();
  std::vector<Running> running;
  std::vector<bool> slot_busy(jobs, false);
  const auto start = Clock::now();
  double finished_seconds = 0;
  int finished_here = 0;
  auto report = [&](const std::string& event) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    const int left = static_cast<int>(pending.size());
    std::string eta = finished_here ? hms(finished_seconds / finished_here * (left + running.size()) / jobs) : "?";
    std::printf("[sweep] %s | %d/%d done, %zu running, %d left, %zu failed | %s elapsed, ~%s to go\n", event.c_str(), done, total,
                running.size(), left, failed.size(), hms(elapsed).c_str(), eta.c_str());
    std::fflush(stdout);
  };
  auto upstream_done = [&](int i) {
    for (int f : sweep.cells[i].upstream())
      if (recipe::cell_state(sweep.cells[f]) != recipe::CellState::done) return false;
    return true;
  };
  auto last_report = Clock::now();

  while (!pending.empty() || !running.empty()) {
    // Cells whose upstream failed cannot run.
    for (auto it = pending.begin(); it != pending.end();) {
      int bad = -1;
      for (int f : sweep.cells[*it].upstream())
        if (failed.count(f)) bad = f;
      if (bad >= 0) {
        failed[*it] = "upstream " + cell_id(sweep.cells[bad]) + " failed";
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
    while (!stopping() && static_cast<int>(running.size()) < jobs) {
      auto it = std::find_if(pending.begin(), pending.end(), upstream_done);
      if (it == pending.end()) break;
      const int slot = static_cast<int>(std::find(slot_busy.begin(), slot_busy.end(), false) - slot_busy.begin());
      const auto& c = sweep.cells[*it];
      const bool resuming = recipe::cell_state(c) == recipe::CellState::interrupted;
      const std::string gpu = gpus > 0 ? recipe::cuda_visible_device(slot, gpus, parent_visible) : "";
      pid_t pid = launch(exe, sweep, c, threads, gpu);
      slot_busy[slot] = true;
      running.push_back({*it, pid, slot, Clock::now()});
      pending.erase(it);
      report(fmt::format("{} {}{}", resuming ? "resume" : "start", cell_id(c), gpus > 0 ? fmt::format(" on GPU {}", gpu) : ""));
    }
    if (running.empty()) {
      if (stopping()) break;
      for (int i : pending) failed[i] = "its upstream cell is not done";  // cannot happen when upstream is in todo
      pending.clear();
      break;
    }
    if (stopping()) {
      for (const auto& r : running) kill(r.pid, SIGTERM);  // each cell checkpoints and exits 143
      std::printf("[sweep] stop requested: %zu running cells checkpoint and stop; run the sweep again to continue\n",
                  running.size());
      std::fflush(stdout);
      for (const auto& r : running) waitpid(r.pid, nullptr, 0);
      return -1;
    }
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      if (Clock::now() - last_report > std::chrono::minutes(10)) {
        last_report = Clock::now();
        report("running " + cell_id(sweep.cells[running.front().cell]));
      }
      continue;
    }
    auto it = std::find_if(running.begin(), running.end(), [&](const Running& r) { return r.pid == pid; });
    if (it == running.end()) continue;
    const auto& c = sweep.cells[it->cell];
    const double secs = std::chrono::duration<double>(Clock::now() - it->start).count();
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    slot_busy[it->slot] = false;
    const int cell = it->cell;
    running.erase(it);
    if (code == 0 && recipe::cell_state(c) == recipe::CellState::done) {
      ++done;
      ++finished_here;
      finished_seconds += secs;
      report(fmt::format("done {} in {}", cell_id(c), hms(secs)));
      record_cell(sweep, c, /*overwrite=*/true);
    } else if (code == 143 && stopping()) {
      report(fmt::format("stopped {}", cell_id(c)));
    } else {
      failed[cell] = fmt::format("exit code {}, see {}/sweep.log", code, c.dir);
      report(fmt::format("FAILED {} (exit code {}; its log: {}/sweep.log)", cell_id(c), code, c.dir));
    }
  }
  if (stopping()) return -1;
  for (const auto& [i, why] : failed) std::printf("[sweep] failed: %s: %s\n", cell_id(sweep.cells[i]).c_str(), why.c_str());
  std::printf("[sweep] %s: %d/%d cells done in %s\n", sweep.name.c_str(), done, total,
              hms(std::chrono::duration<double>(Clock::now() - start).count()).c_str());
  return static_cast<int>(failed.size());
}

std::vector<int> stage_cells(const recipe::Sweep& sweep, const std::string& stage) {
  std::vector<int> out;
  for (int i = 0; i < static_cast<int>(sweep.cells.size()); ++i)
    if (sweep.cells[i].stage == stage) out.push_back(i);
  return out;
}

// One sbatch array job per stage (task i runs the stage's cell i through `sculpt sweep
// --stage S --index i`, resuming it after a requeue) and submit.sh chaining the stages.
void write_slurm(const recipe::Sweep& sweep, const std::string& sweep_file) {
  const fs::path dir = fs::path(sweep.dir) / "slurm";
  fs::create_directories(dir);
  const std::string exe = fs::read_symlink("/proc/self/exe").string();
  std::string submit = "#!/usr/bin/env bash\n# Submits the stages of sweep " + sweep.name +
                       " as array jobs, each stage after the previous one succeeded.\nset -euo pipefail\ncd " +
                       fs::current_path().string() + "\nprev=\n";
  for (const auto& stage : sweep.stages) {
    const auto cells = stage_cells(sweep, stage);
    std::string s = fmt::format(R"(#!/usr/bin/env bash
# Stage {stage} of sweep {name}: array task i runs cell i ({n} cells), one GPU each. Two minutes
# before the time limit or on preemption the cell checkpoints, and the task requeues itself.
#SBATCH --job-name={name}_{stage}
#SBATCH --array=0-{last}
#SBATCH --ntasks=1
#SBATCH --gpus=1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --signal=B:USR1@120
#SBATCH --output={dir}/{stage}_%A_%a.out
set -uo pipefail
cd {cwd}
SCULPT=${{SCULPT:-{exe}}}
"$SCULPT" sweep {file} --stage {stage} --index "$SLURM_ARRAY_TASK_ID" &
PID=$!
trap 'kill -USR1 $PID; wait $PID; scontrol requeue "${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"; exit 0' USR1 TERM
wait $PID
)",
                                fmt::arg("stage", stage), fmt::arg("name", sweep.name), fmt::arg("n", cells.size()),
                                fmt::arg("last", cells.size() - 1), fmt::arg("dir", fs::absolute(dir).string()),
                                fmt::arg("cwd", fs::current_path().string()), fmt::arg("exe", exe),
                                fmt::arg("file", fs::absolute(sweep_file).string()));
    const std::string path = (dir / (stage + ".sbatch")).string();
    io::write_file_atomic(path, s);
    submit += fmt::format("prev=$(sbatch --parsable ${{prev:+--dependency=afterok:$prev}} {})\necho \"{} -> job $prev\"\n", path, stage);
    std::printf("[sweep] %s: %zu cells -> %s\n", stage.c_str(), cells.size(), path.c_str());
  }
  const std::string submit_path = (dir / "submit.sh").string();
  io::write_file_atomic(submit_path, submit);
  fs::permissions(submit_path, fs::perms::owner_exec, fs::perm_options::add);
  std::printf("[sweep] submit with: bash %s\n", submit_path.c_str());
}

}  // namespace

int cmd_sweep(int argc, char** argv) {
  auto args = Args::parse(argc, argv, 2, {"jobs", "jobs-per-gpu", "stage", "index", "tasks", "variants"}, {"slurm", "status", "inputs"});
  SCULPT_CHECK(args.positional.size() == 1 && args.overrides.empty(),
               "usage: sculpt sweep SWEEP.yaml [--jobs N [--jobs-per-gpu K]] [--status | --inputs] [--slurm] [--stage S [--index I]] [--tasks T1,T2] [--variants V1,V2]");
  const std::string file = args.positional[0];
  const auto sweep = recipe::load_sweep(file);
  auto list_of = [&](const std::string& key) {
    std::vector<std::string> out;
    for (std::stringstream list(args.get(key, "")); list.good();) {
      std::string t;
      std::getline(list, t, ',');
      if (!t.empty()) out.push_back(t);
    }
    return out;
  };
  const auto tasks = list_of("tasks"), variants = list_of("variants");
  const bool one_cell = args.has("index");  // a slurm array task: the I-th cell of --stage S
  SCULPT_CHECK(!one_cell || (args.has("stage") && tasks.empty() && variants.empty()),
               "--index I names the I-th cell of --stage S (and no --tasks or --variants)");
  std::vector<int> todo;
  if (one_cell) {
    const auto cells = stage_cells(sweep, args.require("stage"));
    SCULPT_CHECK(!cells.empty(), "{}: no stage '{}'", file, args.require("stage"));
    const int index = std::stoi(args.require("index"));
    SCULPT_CHECK(index >= 0 && index < static_cast<int>(cells.size()), "--index {}: stage {} has cells 0..{}", index,
                 args.require("stage"), cells.size() - 1);
    todo.push_back(cells[index]);
  } else {
    todo = recipe::select_cells(sweep, args.get("stage", ""), tasks, variants);
  }
  // A slurm array task's cell is needed by any cell of the sweep (the later stages are other
  // array jobs); a local sweep's by the selected cells.
  std::vector<int> consumers = todo;
  if (one_cell) {
    consumers.resize(sweep.cells.size());
    std::iota(consumers.begin(), consumers.end(), 0);
  }
  if (args.has("status")) {
    const auto to_run = recipe::cells_to_run(sweep, todo, consumers);
    std::map<recipe::CellState, int> count;
    for (int i : todo) {
      const auto& c = sweep.cells[i];
      const auto state = recipe::cell_state(c);
      ++count[state];
      const auto missing = std::find(to_run.begin(), to_run.end(), i) != to_run.end() ? recipe::missing_inputs(sweep, i, to_run)
                                                                                      : std::vector<std::string>{};
      std::printf("%-12s %s%s\n", recipe::to_string(state), c.dir.c_str(),
                  missing.empty() ? "" : fmt::format("  (cannot start: missing {})", fmt::join(missing, ", ")).c_str());
    }
    std::printf("[sweep] %zu cells: %d done, %d interrupted, %d fresh, %d recorded (results in %s, no run directory); %zu to run\n",
                todo.size(), count[recipe::CellState::done], count[recipe::CellState::interrupted], count[recipe::CellState::fresh],
                count[recipe::CellState::recorded], sweep.records.empty() ? "-" : sweep.records.c_str(), to_run.size());
    return 0;
  }
  if (args.has("inputs")) {  // what the cells to run read, one "kind path" a line (scripts/gpu_sweep.sh)
    const auto in = recipe::sweep_inputs(sweep, recipe::cells_to_run(sweep, todo, consumers));
    for (const auto& [kind, list] : {std::pair{"cell", &in.cells}, {"model", &in.models}, {"data", &in.data}})
      for (const auto& p : *list) std::printf("%s %s\n", kind, p.c_str());
    return 0;
  }
  fs::create_directories(sweep.dir);
  io::write_file_atomic((fs::path(sweep.dir) / "sweep.yaml").string(), io::read_file(file));
  if (args.has("slurm")) {
    write_slurm(sweep, file);
    return 0;
  }
  if (one_cell && !recipe::cells_to_run(sweep, todo, consumers).empty()) {  // its upstream is another array job's: it must have finished
    const auto& c = sweep.cells[todo.front()];
    for (int f : c.upstream())
      SCULPT_CHECK(recipe::cell_state(sweep.cells[f]) == recipe::CellState::done, "{}: starts from {}, which is not done", c.dir,
                   sweep.cells[f].dir);
  }
  const int failed = run_cells(sweep, todo, consumers, std::stoi(args.get("jobs", "1")), std::stoi(args.get("jobs-per-gpu", "1")));
  if (failed < 0) return 143;
  return failed == 0 ? 0 : 1;
}

}  // namespace sculpt::cli
