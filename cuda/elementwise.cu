// elementwise.cu — nvcc translation unit for cuda/elementwise.cuh (grip::cuda).
#include "elementwise.cuh"
