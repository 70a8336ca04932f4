/* cmd_account: to be written */
#include "ledgerq/cli.h"
