#pragma once
// pkg-config puts the openblas-pthread include dir first, so this is OpenBLAS's own cblas.h.
#include <cblas.h>
