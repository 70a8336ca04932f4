/* ledger: to be written */
#include "ledgerq/ledger.h"
