/* message: to be written */
#include "ledgerq/message.h"
