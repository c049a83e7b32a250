// adamw.cu — nvcc translation unit for cuda/adamw.cuh (grip::cuda).
#include "adamw.cuh"
