/* The inferd binary: one program, one subcommand per tool. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "inferd.h"

typedef struct command {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} command;

static const command commands[] = {
    {"serve", cmd_serve, "serve a model repository over HTTP and gRPC (Triton-compatible)"},
    {"bench", cmd_bench, "measure a model's throughput, latency and memory on the engine"},
    {"run", cmd_run, "run one inference on .npy inputs and save the outputs as .npy"},
    {"calibrate", cmd_calibrate, "compute an INT8 calibration cache from .npy batches (entropy, percentile, max)"},
    {"perf", cmd_perf, "load a gRPC inference server and report requests/s and latency percentiles"},
    {"zoo", cmd_zoo, "write a built-in model (resnet50) with generated weights as a repository entry"},
};

static void print_usage(FILE *out) {
  fprintf(out,
          "usage: inferd <command> [options]\n\n"
          "inferd is a deep-learning inference server and engine compatible with Triton.\n\ncommands:\n");
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(out, "\n'inferd <command> --help' describes a command's options.\n"
               "  --version  print the version and the devices found\n  --help     show this help\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
    print_usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("%s\n", inferd_build_info());
    return 0;
  }
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "inferd: unknown command '%s' (see inferd --help)\n", argv[1]);
  return 2;
}
