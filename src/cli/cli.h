/*
 * Subcommands of the inferd binary and the option parser they share. Options
 * are spelled --name=value or --name value (as tritonserver accepts); an
 * unknown option is an error that names it.
 */
#ifndef INFERD_CLI_CLI_H
#define INFERD_CLI_CLI_H

#include <stdbool.h>
#include <stdio.h>

typedef struct cli_option {
  const char *name;  /* without the leading dashes */
  const char *value; /* placeholder shown in help ("N", "PATH"), NULL for a switch */
  const char *help;
} cli_option;

typedef struct cli_parser {
  const char *command;
  const cli_option *options;
  int argc;
  char **argv;
  int index;
} cli_parser;

void cli_parser_init(cli_parser *p, const char *command, const cli_option *options, int argc, char **argv);
/* Next option: returns 1 and sets *name and *value (value NULL for switches), 0
 * at the end, -1 after printing an error for an unknown option, a missing
 * value or a stray argument. "--help" is returned as an option named "help". */
int cli_next(cli_parser *p, const char **name, const char **value);
void cli_print_help(FILE *out, const char *usage, const char *summary, const cli_option *options);

/* Parses an integer option value in [lo, hi]; prints an error and returns
 * false otherwise. */
bool cli_parse_int(const char *option, const char *text, long lo, long hi, long *out);
/* Parses "1,8,32" into up to `cap` positive integers. */
bool cli_parse_int_list(const char *option, const char *text, int *out, int cap, int *count);

/* An error naming the model's first BYTES input or output, which `run` and
 * `bench` (numeric .npy and generated data) do not handle; NULL if none. */
typedef struct inferd_plan inferd_plan;
typedef struct inferd_error inferd_error;
inferd_error *cli_check_numeric(const inferd_plan *plan);

int cmd_bench(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_zoo(int argc, char **argv);
int cmd_perf(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
