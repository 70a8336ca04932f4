/* cli: to be written */
#include "ledgerq/cli.h"
