// The LibTorch headers the core needs, in one place so that they can be
// precompiled once (they dominate compile time on small machines).
#pragma once
#include <torch/script.h>
#include <torch/csrc/autograd/autograd.h>
#include <ATen/Parallel.h>
