/*
 * Subcommands of the inferd binary and the option parser they share. Options
 * are spelled --name=value or --name value (as tritonserver accepts); an
 * unknown option is an error that names it.
 */
#ifndef INFERD_CLI_CLI_H
#define INFERD_CLI_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "inferd.h"

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
/* Parses true/1/on or false/0/off; prints an error naming the option and
 * returns false otherwise. */
bool cli_parse_bool(const char *option, const char *text, bool *out);
/* Parses "1,8,32" into up to `cap` positive integers. */
bool cli_parse_int_list(const char *option, const char *text, int *out, int cap, int *count);

/* An error naming the model's first BYTES input or output, which `run` and
 * `bench` (numeric .npy and generated data) do not handle; NULL if none. */
inferd_error *cli_check_numeric(const inferd_plan *plan);

/* --device (cpu, cuda, cuda:N) and --precision (fp32, tf32, fp16, bf16)
 * values; print an error naming the option and return false otherwise. */
bool cli_parse_device(const char *text, inferd_device *device);
bool cli_parse_precision(const char *text, inferd_precision *precision);
/* --backend naming a CPU backend next to a CUDA --device is a usage error:
 * prints it and returns false. */
bool cli_device_fits_backend(const char *command, inferd_device device, const char *backend);
/* Whether the device asked for can run here: a GPU that is not visible is
 * an error saying how many are and, with none, why (the GPU line of
 * --version). NULL when fine. */
inferd_error *cli_check_device(inferd_device device);
/* "cpu" or "cuda:N" into buf. */
const char *cli_device_name(inferd_device device, char *buf, size_t size);

int cmd_bench(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_zoo(int argc, char **argv);
int cmd_perf(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
