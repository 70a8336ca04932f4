/* amqp: to be written */
#include "ledgerq/amqp.h"
