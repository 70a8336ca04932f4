/* cmd_admin: to be written */
#include "ledgerq/cli.h"
