// score.cu — nvcc translation unit for cuda/score.cuh (grip::cuda).
#include "score.cuh"
