// config::Node: a yaml-cpp node that knows its key path and line, converts with errors that
// name them, writes defaults back (so the resolved recipe shows every value in force), and
// rejects unknown keys with a suggestion. Errors are collected and thrown together.
#pragma once
#include <yaml-cpp/yaml.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "sculpt/core/schedule.h"

namespace sculpt::recipe {

struct ErrorList {
  std::string file;
  std::vector<std::string> errors;
  void add(const YAML::Mark& mark, const std::string& message);
  void throw_if_any() const;
};

class Node {
 public:
  Node(YAML::Node node, std::string path, std::shared_ptr<ErrorList> errors);

  template <typename T>
  T get(const std::string& key, const T& fallback);
  Duration get_duration(const std::string& key, const std::string& fallback, bool allow_fraction = false);
  Node child(const std::string& key);   // a map (created empty when absent)
  bool has(const std::string& key) const;
  YAML::Node raw(const std::string& key);  // marks key known, no conversion
  // Every key present but never asked for is an error ("did you mean ...").
  void close();
  void error(const std::string& key, const std::string& message);
  std::string path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

 private:
  YAML::Node node_;
  std::string path_;
  std::shared_ptr<ErrorList> errors_;
  std::set<std::string> known_;
};

// Apply "a.b.c=value" (value parsed as YAML) and "~a.b" (delete) to a tree.
void apply_override(YAML::Node& root, const std::string& spec);
// Closest candidate by edit distance, or "" if none is close.
std::string suggest(const std::string& key, const std::set<std::string>& candidates);

}  // namespace sculpt::recipe
