// The benchmark table's accuracy-versus-size plot for one task, as an SVG document.
#pragma once
#include <string>

#include "sculpt/metrics/results_table.h"

namespace sculpt::metrics {

// Metric ×100 against the remaining fraction of the encoder's weights for `task`: one line per
// row method with error bars over seeds, the structured pruners (sp3, cofi) bold and on top,
// each "(before FT)" row dashed in its method's colour, the teacher as a grey dashed line.
// Every point carries a <title> (a browser's tooltip) with its row, value, seeds and size. A row
// without a structural size (unstructured sparsity: Prune OFA) stands at 1 − its sparsity;
// points at one size (k-means' bit widths) are not joined. The y axis spans the fine-tuned rows
// and the teacher; a "(before FT)" point outside it is a hollow triangle at the edge.
std::string plot_task_svg(const Table& t, const std::string& task);

}  // namespace sculpt::metrics
