// Preemption: SIGTERM / SIGUSR1 set a flag; the training loop finishes its update,
// checkpoints and exits with 143 (128 + SIGTERM) so a requeued job resumes.
#pragma once

namespace sculpt {

void install_stop_signal_handlers();
bool stop_requested();
int stop_signal();  // the signal that asked, or 0

// Thrown after the checkpoint is written; main() turns it into exit code 143.
struct StopRequested {
  int signal;
};

}  // namespace sculpt
