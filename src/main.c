/* ledgerq: one binary, subcommands (contract section 1). */
#include "ledgerq/cli.h"

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return LQ_EXIT_USAGE;
}
