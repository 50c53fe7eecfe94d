#include "sculpt/recipe/node.h"

#include <fmt/ranges.h>
#include <fmt/format.h>

#include <algorithm>

#include "sculpt/core/error.h"

namespace sculpt::recipe {

void ErrorList::add(const YAML::Mark& mark, const std::string& message) {
  if (mark.is_null() || mark.line < 0) errors.push_back(fmt::format("{}: {} (command line override)", file, message));
  else errors.push_back(fmt::format("{}:{}: {}", file, mark.line + 1, message));
}

void ErrorList::throw_if_any() const {
  if (errors.empty()) return;
  std::string all = errors.size() == 1 ? errors[0] : fmt::format("{} problems in the recipe:", errors.size());
  if (errors.size() > 1)
    for (const auto& e : errors) all += "\n  " + e;
  throw Error(all);
}

Node::Node(YAML::Node node, std::string path, std::shared_ptr<ErrorList> errors)
    : node_(std::move(node)), path_(std::move(path)), errors_(std::move(errors)) {}

bool Node::has(const std::string& key) const {
  const YAML::Node& n = node_;
  return n.IsMap() && n[key] && !n[key].IsNull();
}

void Node::error(const std::string& key, const std::string& message) {
  const YAML::Node& n = node_;
  YAML::Mark mark = (n.IsMap() && n[key]) ? n[key].Mark() : node_.Mark();
  errors_->add(mark, fmt::format("{}: {}", path(key), message));
}

namespace {
template <typename T>
const char* type_name() {
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  else if constexpr (std::is_integral_v<T>) return "an integer";
  else if constexpr (std::is_floating_point_v<T>) return "a number";
  else if constexpr (std::is_same_v<T, std::string>) return "a string";
  else return "a list";
}
}  // namespace

template <typename T>
T Node::get(const std::string& key, const T& fallback) {
  known_.insert(key);
  if (!has(key)) {
    if (node_.IsMap() || node_.IsNull()) node_[key] = fallback;
    return fallback;
  }
  YAML::Node v = node_[key];
  try {
    if constexpr (std::is_same_v<T, std::string>) {
      if (!v.IsScalar()) throw YAML::Exception(v.Mark(), "");
    }
    return v.as<T>();
  } catch (const YAML::Exception&) {
    std::string got = v.IsScalar() ? "'" + v.Scalar() + "'" : (v.IsMap() ? "a map" : "a list");
    error(key, fmt::format("expected {}, got {}", type_name<T>(), got));
    return fallback;
  }
}

template bool Node::get<bool>(const std::string&, const bool&);
template int64_t Node::get<int64_t>(const std::string&, const int64_t&);
template double Node::get<double>(const std::string&, const double&);
template std::string Node::get<std::string>(const std::string&, const std::string&);
template std::vector<double> Node::get<std::vector<double>>(const std::string&, const std::vector<double>&);
template std::vector<std::string> Node::get<std::vector<std::string>>(const std::string&, const std::vector<std::string>&);

Duration Node::get_duration(const std::string& key, const std::string& fallback, bool allow_fraction) {
  std::string text = get<std::string>(key, fallback);
  try {
    return Duration::parse(text, allow_fraction);
  } catch (const Error& e) {
    error(key, e.what());
    return Duration::parse(fallback, allow_fraction);
  }
}

YAML::Node Node::raw(const std::string& key) {
  known_.insert(key);
  const YAML::Node& n = node_;
  return n.IsMap() ? n[key] : YAML::Node();
}

Node Node::child(const std::string& key) {
  known_.insert(key);
  if (!has(key)) node_[key] = YAML::Node(YAML::NodeType::Map);
  YAML::Node c = node_[key];
  if (!c.IsMap()) {
    error(key, "expected a map of settings");
    c = YAML::Node(YAML::NodeType::Map);
  }
  return Node(c, path(key), errors_);
}

void Node::close() {
  if (!node_.IsMap()) return;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    const std::string key = it->first.Scalar();
    if (known_.count(key)) continue;
    std::string hint = suggest(key, known_);
    std::vector<std::string> sorted(known_.begin(), known_.end());
    errors_->add(it->first.Mark(), fmt::format("unknown key '{}'{}", path(key),
                                               hint.empty() ? fmt::format(" (allowed here: {})", fmt::join(sorted, ", "))
                                                            : fmt::format(" (did you mean '{}'?)", hint)));
  }
}

std::string suggest(const std::string& key, const std::set<std::string>& candidates) {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      cur[0] = i;
      for (size_t j = 1; j <= b.size(); ++j)
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      std::swap(prev, cur);
    }
    return prev[b.size()];
  };
  std::string best;
  size_t best_d = std::max<size_t>(2, key.size() / 3) + 1;
  for (const auto& c : candidates) {
    size_t d = distance(key, c);
    if (d < best_d) best = c, best_d = d;
  }
  return best;
}

void apply_override(YAML::Node& root, const std::string& spec) {
  const bool remove = !spec.empty() && spec[0] == '~';
  const size_t eq = spec.find('=');
  SCULPT_CHECK(remove || eq != std::string::npos, "override '{}' must look like key.path=value or ~key.path", spec);
  const std::string path = remove ? spec.substr(1) : spec.substr(0, eq);
  SCULPT_CHECK(!path.empty(), "override '{}' has an empty key", spec);
  std::vector<std::string> keys;
  for (size_t start = 0;;) {
    size_t dot = path.find('.', start);
    keys.push_back(path.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  // Walk with explicit node handles: yaml-cpp's operator= on a handle rebinds, not assigns.
  std::vector<YAML::Node> chain{root};
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    YAML::Node parent = chain.back();
    if (!parent[keys[i]] || !parent[keys[i]].IsMap()) {
      if (remove) return;
      parent[keys[i]] = YAML::Node(YAML::NodeType::Map);
    }
    chain.push_back(parent[keys[i]]);
  }
  YAML::Node parent = chain.back();
  if (remove) {
    parent.remove(keys.back());
    return;
  }
  YAML::Node value;
  try {
    value = YAML::Load(spec.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    fail("override '{}': value is not valid YAML ({})", spec, e.msg);
  }
  // A scalar is rebuilt without a source mark, so errors about it say "command line override".
  parent[keys.back()] = value.IsScalar() ? YAML::Node(value.Scalar()) : value;
}

}  // namespace sculpt::recipe
