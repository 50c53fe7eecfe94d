#include "sculpt/metrics/table_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <vector>

namespace sculpt::metrics {
namespace {

struct Point {
  double x, y, err;
  int n;
  std::string size;
  bool from_sparsity;  // x is 1 − sparsity (no structural size)
};

struct Series {
  std::string name, base;  // base: the method without " (before FT)"
  bool before_ft = false, bold = false;
  std::string color;
  std::vector<Point> pts;
};

bool known(double v) { return std::isfinite(v) && v >= 0; }

// Distinct colours for the baselines; SP3 and CoFi keep theirs in every plot.
const char* kPalette[] = {"#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
                          "#bcbd22", "#17becf", "#98df8a", "#c5b0d5", "#ffbb78", "#aec7e8"};

std::string point_title(const Series& s, const Point& p) {
  std::string v = p.n > 1 ? fmt::format("{:.1f} ± {:.1f} (n={})", p.y, p.err, p.n) : fmt::format("{:.1f} (n={})", p.y, p.n);
  return fmt::format("{} {}: {} at {:.3f} {}", s.name, p.size, v, p.x, p.from_sparsity ? "(1 − sparsity)" : "remaining");
}

}  // namespace

std::string plot_task_svg(const Table& t, const std::string& task) {
  std::map<std::string, Series> series;
  std::vector<std::string> order;  // first appearance
  double teacher = std::numeric_limits<double>::quiet_NaN();
  for (const auto& r : t.rows) {
    auto it = r.scores.find(task);
    if (it == r.scores.end()) continue;
    if (r.method == "dense") {
      teacher = it->second.mean;
      continue;
    }
    Point p{std::numeric_limits<double>::quiet_NaN(), it->second.mean, std::isfinite(it->second.std) ? it->second.std : 0.0,
            it->second.n, r.size, false};
    if (auto rem = r.remaining_of.find(task); rem != r.remaining_of.end() && known(rem->second.mean)) {
      p.x = rem->second.mean;
    } else if (auto pr = r.pruned_of.find(task); pr != r.pruned_of.end() && known(pr->second.mean)) {
      p.x = 1 - pr->second.mean;
      p.from_sparsity = true;
    }
    if (!known(p.x)) continue;
    auto& s = series[r.method];
    if (s.name.empty()) {
      s.name = r.method;
      const auto cut = r.method.find(" (before FT)");
      s.before_ft = cut != std::string::npos;
      s.base = r.method.substr(0, cut);
      s.bold = s.base == "sp3" || s.base == "cofi";
      order.push_back(r.method);
    }
    s.pts.push_back(p);
  }
  std::map<std::string, std::string> color_of = {{"sp3", "#d62728"}, {"cofi", "#1f77b4"}};
  size_t next_color = 0;
  for (const auto& name : order) {
    auto& s = series[name];
    if (!color_of.count(s.base)) color_of[s.base] = kPalette[next_color++ % std::size(kPalette)];
    s.color = color_of[s.base];
    std::sort(s.pts.begin(), s.pts.end(), [](const Point& a, const Point& b) { return a.x < b.x; });
  }
  // Bold series last (drawn on top) and first in the legend.
  std::vector<const Series*> draw, legend;
  for (bool bold : {false, true})
    for (const auto& name : order)
      if (series[name].bold == bold) draw.push_back(&series[name]);
  for (bool bold : {true, false})
    for (const auto& name : order)
      if (series[name].bold == bold) legend.push_back(&series[name]);

  // The y axis spans the fine-tuned models and the teacher; a model before its fine-tune that
  // falls outside (k-means 2-bit on MRPC: 29.7 beside scores of 66-83) is marked at the edge
  // instead of squeezing every other line into a strip.
  bool any_tuned = false;
  for (const auto* s : draw) any_tuned = any_tuned || (!s->before_ft && !s->pts.empty());
  double x1 = 0.0, y0 = std::numeric_limits<double>::max(), y1 = std::numeric_limits<double>::lowest();
  for (const auto* s : draw)
    for (const auto& p : s->pts) {
      x1 = std::max(x1, p.x);
      if (!s->before_ft || !any_tuned) y0 = std::min(y0, p.y - p.err), y1 = std::max(y1, p.y + p.err);
    }
  if (!std::isnan(teacher)) y0 = std::min(y0, teacher), y1 = std::max(y1, teacher);
  if (y0 > y1) y0 = 0, y1 = 100;
  x1 = x1 > 0 ? std::min(1.0, x1 * 1.15) : 1.0;
  const double pad = std::max(1.0, 0.08 * (y1 - y0));
  y0 -= pad, y1 += pad;

  const double W = 780, left = 60, right = 260, top = 30, bottom = 50, row_h = 16;
  const double H = std::max(400.0, top + 10 + row_h * static_cast<double>(legend.size() + 1) + bottom);
  auto X = [&](double x) { return left + (W - left - right) * x / x1; };
  auto Y = [&](double y) { return top + (H - top - bottom) * (1 - (y - y0) / (y1 - y0)); };
  const std::string metric = t.metric_of.count(task) ? t.metric_of.at(task) : "";
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">{}: {} vs remaining encoder weights</text>\n",
      W, H, (W - right + left) / 2, task, metric);
  svg += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"black\"/>\n", left, H - bottom, W - right);
  svg += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"black\"/>\n", left, top, H - bottom);
  for (int i = 0; i <= 5; ++i) {
    const double x = x1 * i / 5, y = y0 + (y1 - y0) * i / 5;
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:.2f}</text>\n", X(x), H - bottom + 16, x);
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.1f}</text>\n", left - 6, Y(y) + 4, y);
    svg += fmt::format("<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#ddd\"/>\n", left, Y(y), W - right);
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">remaining fraction of the encoder's weights</text>\n",
                     (W - right + left) / 2, H - 12);
  svg += fmt::format("<text x=\"16\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {0})\">{1} ×100</text>\n",
                     (H - bottom + top) / 2, metric);
  if (!std::isnan(teacher))
    svg += fmt::format("<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"gray\" stroke-dasharray=\"6 4\"/>\n", left,
                       Y(teacher), W - right);

  auto style = [](const Series& s) {
    return fmt::format("stroke=\"{}\" stroke-width=\"{}\"{}{}", s.color, s.bold ? 2.5 : 1.2, s.before_ft ? " stroke-dasharray=\"5 3\"" : "",
                       s.bold ? "" : " stroke-opacity=\"0.8\"");
  };
  auto shown = [&](double y) { return std::clamp(y, y0, y1); };
  for (const auto* s : draw) {
    std::string path;
    for (size_t i = 0; i < s->pts.size(); ++i) {
      const auto& p = s->pts[i];
      // One size, several points (k-means' bit widths): markers only, no vertical join.
      const bool join = i > 0 && std::abs(p.x - s->pts[i - 1].x) > 1e-9;
      path += fmt::format("{}{:.1f},{:.1f} ", join ? "L" : "M", X(p.x), Y(shown(p.y)));
    }
    svg += fmt::format("<path d=\"{}\" fill=\"none\" {}/>\n", path, style(*s));
    const double r = s->bold ? 4.5 : 3.0;
    for (const auto& p : s->pts) {
      if (p.y < y0 || p.y > y1) {  // off the axis: a triangle at the edge, pointing where it lies
        const double cx = X(p.x), edge = Y(shown(p.y)), dir = p.y < y0 ? 1 : -1;
        svg += fmt::format("<polygon points=\"{:.1f},{:.1f} {:.1f},{:.1f} {:.1f},{:.1f}\" fill=\"white\" stroke=\"{}\"><title>{} ({} the "
                           "axis)</title></polygon>\n",
                           cx - r, edge - dir * 2 * r, cx + r, edge - dir * 2 * r, cx, edge, s->color, point_title(*s, p),
                           p.y < y0 ? "below" : "above");
        continue;
      }
      if (p.err > 0)
        svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"{3}\"/>\n", X(p.x),
                           Y(shown(p.y - p.err)), Y(shown(p.y + p.err)), s->color);
      svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\" fill=\"{}\"><title>{}</title></circle>\n", X(p.x), Y(p.y), r,
                         s->before_ft ? "white" : s->color, point_title(*s, p));
      if (s->before_ft)  // hollow markers for the models before their fine-tune
        svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\" fill=\"none\" stroke=\"{}\"/>\n", X(p.x), Y(p.y), r, s->color);
    }
  }
  // Legend: a line sample in each series' style, its marker and name.
  double ly = top + 10;
  const double lx = W - right + 12;
  if (!std::isnan(teacher)) {
    svg += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"gray\" stroke-dasharray=\"6 4\"/>\n", lx, ly - 4, lx + 26);
    svg += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"gray\">teacher {:.1f}</text>\n", lx + 32, ly, teacher);
    ly += row_h;
  }
  for (const auto* s : legend) {
    svg += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" {3}/>\n", lx, ly - 4, lx + 26, style(*s));
    svg += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{}\" stroke=\"{}\"/>\n", lx + 13, ly - 4, s->before_ft ? "white" : s->color,
                       s->color);
    svg += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"{}\"{}>{}</text>\n", lx + 32, ly, s->color, s->bold ? " font-weight=\"bold\"" : "",
                       s->name);
    ly += row_h;
  }
  return svg + "</svg>\n";
}

}  // namespace sculpt::metrics
