/* inferd zoo: writes a model of the built-in zoo as a Triton repository entry. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/zoo/zoo.h"

static const cli_option zoo_options[] = {
    {"output", "DIR", "model repository folder to write MODEL/1/model.onnx and MODEL/config.pbtxt into (required)"},
    {"max-batch-size", "N", "max_batch_size written to config.pbtxt (default 8; 0 disables batching)"},
    {"seed", "S", "seed of the weight generator (default 0); a seed always gives the same file"},
    {NULL, NULL, NULL},
};

static void print_models(FILE *out) {
  fprintf(out, "\nmodels:\n");
  for (const zoo_model *m = zoo_models; m->id; m++) fprintf(out, "  %-10s %s\n", m->id, m->summary);
}

int cmd_zoo(int argc, char **argv) {
  cli_parser p;
  cli_parser_init(&p, "zoo", zoo_options, argc, argv);
  const char *model_id = NULL, *output = NULL;
  long max_batch = 8, seed = 0;
  /* The model id is the one argument that is not an option. */
  if (argc > 1 && strncmp(argv[1], "-", 1) != 0) {
    model_id = argv[1];
    p.index = 2;
  }
  const char *name, *value;
  int r;
  while ((r = cli_next(&p, &name, &value)) > 0) {
    if (strcmp(name, "help") == 0) {
      cli_print_help(stdout, "inferd zoo MODEL --output DIR [options]",
                     "Builds a model of the zoo with deterministic generated weights (no download) and writes it "
                     "as a\nTriton model repository entry: DIR/MODEL/1/model.onnx and DIR/MODEL/config.pbtxt.",
                     zoo_options);
      print_models(stdout);
      return 0;
    } else if (strcmp(name, "output") == 0) {
      output = value;
    } else if (strcmp(name, "max-batch-size") == 0) {
      if (!cli_parse_int(name, value, 0, 1 << 20, &max_batch)) return 2;
    } else if (strcmp(name, "seed") == 0) {
      if (!cli_parse_int(name, value, 0, 0x7fffffffffffffffL, &seed)) return 2;
    }
  }
  if (r < 0) return 2;
  if (!model_id) {
    fprintf(stderr, "inferd zoo: which model? (see inferd zoo --help)\n");
    print_models(stderr);
    return 2;
  }
  const zoo_model *model = zoo_find(model_id);
  if (!model) {
    fprintf(stderr, "inferd zoo: no model '%s' in the zoo; available:", model_id);
    for (const zoo_model *m = zoo_models; m->id; m++) fprintf(stderr, " %s", m->id);
    fprintf(stderr, "\n");
    return 2;
  }
  if (!output) {
    fprintf(stderr, "inferd zoo: --output DIR is required\n");
    return 2;
  }
  zoo_write_result result;
  inferd_error *e = zoo_write(model, output, (int)max_batch, (uint64_t)seed, &result);
  if (e) {
    fprintf(stderr, "inferd zoo: %s\n", inferd_error_message(e));
    inferd_error_delete(e);
    return 1;
  }
  printf("wrote %s (%.1f MB, %lld parameters) and its config.pbtxt\n", result.model_path,
         (double)result.model_bytes / 1e6, (long long)result.parameters);
  return 0;
}
