// Precompiled header: the torch API is the heaviest include by far.
#pragma once
#include <torch/torch.h>
#include <fmt/format.h>
#include <string>
#include <vector>
#include <map>
