/* json: to be written */
#include "ledgerq/json.h"
