/* db: to be written */
#include "ledgerq/db.h"
