// Checks on a model directory given by a user, before anything tries to read it.
#pragma once
#include <string>

namespace sculpt::io {

// Refuse DIR unless it is a model directory (exists, is a directory, holds config.json);
// `what` names where the path came from ("--model", "model.path") for the message.
void require_model_dir(const std::string& dir, const std::string& what);

}  // namespace sculpt::io
