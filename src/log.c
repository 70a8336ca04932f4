/* log: to be written */
#include "ledgerq/log.h"
