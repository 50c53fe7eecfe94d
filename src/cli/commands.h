// One function per verb; each returns the process exit code.
#pragma once

namespace sculpt::cli {

int cmd_run(int argc, char** argv);
int cmd_resume(int argc, char** argv);
int cmd_validate(int argc, char** argv);
int cmd_forward(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int bench_data(int argc, char** argv);  // sculpt bench data (cmd_bench_data.cpp)
int cmd_env(int argc, char** argv);
int cmd_sweep(int argc, char** argv);
int cmd_table(int argc, char** argv);
int cmd_compress(int argc, char** argv);
int cmd_quantize(int argc, char** argv);  // cmd_compress.cpp

}  // namespace sculpt::cli
