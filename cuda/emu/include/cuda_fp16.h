#include "cuemu.h"
