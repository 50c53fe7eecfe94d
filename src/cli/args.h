// Minimal argv handling for the verbs: --flag value pairs, repeated flags, positionals and
// key=value overrides. Unknown flags are errors (as torchtune's parser).
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include "sculpt/core/error.h"

namespace sculpt::cli {

struct Args {
  std::vector<std::string> positional;
  std::vector<std::string> overrides;  // key=value and ~key
  std::multimap<std::string, std::string> flags;

  // `flags_with_value` are --name value; `switches` are --name alone.
  static Args parse(int argc, char** argv, int first, const std::set<std::string>& flags_with_value,
                    const std::set<std::string>& switches = {});
  std::string get(const std::string& name, const std::string& fallback = "") const;
  std::string require(const std::string& name) const;
  std::vector<std::string> all(const std::string& name) const;
  bool has(const std::string& name) const { return flags.count(name) > 0; }
};

}  // namespace sculpt::cli
