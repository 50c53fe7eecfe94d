// Small file helpers shared by the loaders and checkpoint writers.
#pragma once
#include <string>

namespace sculpt::io {

std::string read_file(const std::string& path);
// Write to PATH.tmp.<pid>, fsync, rename over PATH, fsync the directory.
void write_file_atomic(const std::string& path, const std::string& bytes);
// fsync a directory so a rename inside it is durable.
void fsync_dir(const std::string& dir);

}  // namespace sculpt::io
