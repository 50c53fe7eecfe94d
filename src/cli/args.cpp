#include "args.h"

namespace sculpt::cli {

Args Args::parse(int argc, char** argv, int first, const std::set<std::string>& with_value, const std::set<std::string>& switches) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) == 0) {
      std::string name = arg.substr(2), value;
      if (auto eq = name.find('='); eq != std::string::npos) value = name.substr(eq + 1), name = name.substr(0, eq);
      if (switches.count(name)) {
        a.flags.emplace(name, "1");
        continue;
      }
      SCULPT_CHECK(with_value.count(name), "unknown option --{} (recipe settings are given as key=value)", name);
      if (value.empty()) {
        SCULPT_CHECK(i + 1 < argc, "option --{} needs a value", name);
        value = argv[++i];
      }
      a.flags.emplace(name, value);
    } else if (arg.find('=') != std::string::npos || (arg.size() > 1 && arg[0] == '~')) {
      a.overrides.push_back(arg);
    } else {
      a.positional.push_back(arg);
    }
  }
  return a;
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto it = flags.find(name);
  return it == flags.end() ? fallback : it->second;
}

std::string Args::require(const std::string& name) const {
  auto it = flags.find(name);
  SCULPT_CHECK(it != flags.end(), "missing required option --{}", name);
  return it->second;
}

std::vector<std::string> Args::all(const std::string& name) const {
  std::vector<std::string> out;
  for (auto [it, end] = flags.equal_range(name); it != end; ++it) out.push_back(it->second);
  return out;
}

}  // namespace sculpt::cli
