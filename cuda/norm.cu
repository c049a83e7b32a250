// norm.cu — nvcc translation unit for cuda/norm.cuh (grip::cuda).
#include "norm.cuh"
