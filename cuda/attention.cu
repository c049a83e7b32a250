// attention.cu — nvcc translation unit for cuda/attention.cuh (grip::cuda).
#include "attention.cuh"
