/* config: to be written */
#include "ledgerq/config.h"
