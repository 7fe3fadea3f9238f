#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "cli/cli.h"
#include "inferd.h"

void cli_parser_init(cli_parser *p, const char *command, const cli_option *options, int argc, char **argv) {
  *p = (cli_parser){.command = command, .options = options, .argc = argc, .argv = argv, .index = 1};
}

int cli_next(cli_parser *p, const char **name, const char **value) {
  if (p->index >= p->argc) return 0;
  const char *arg = p->argv[p->index++];
  if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
    *name = "help";
    *value = NULL;
    return 1;
  }
  if (strncmp(arg, "--", 2) != 0) {
    fprintf(stderr, "inferd %s: unexpected argument '%s' (see --help)\n", p->command, arg);
    return -1;
  }
  arg += 2;
  const char *eq = strchr(arg, '=');
  size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
  for (const cli_option *o = p->options; o->name; o++) {
    if (strlen(o->name) != len || strncmp(o->name, arg, len) != 0) continue;
    *name = o->name;
    if (!o->value) {
      if (eq) {
        fprintf(stderr, "inferd %s: option --%s takes no value\n", p->command, o->name);
        return -1;
      }
      *value = NULL;
      return 1;
    }
    if (eq) {
      *value = eq + 1;
    } else if (p->index < p->argc) {
      *value = p->argv[p->index++];
    } else {
      fprintf(stderr, "inferd %s: option --%s needs a value (%s)\n", p->command, o->name, o->value);
      return -1;
    }
    return 1;
  }
  fprintf(stderr, "inferd %s: unknown option '--%.*s' (see --help)\n", p->command, (int)len, arg);
  return -1;
}

void cli_print_help(FILE *out, const char *usage, const char *summary, const cli_option *options) {
  fprintf(out, "usage: %s\n\n%s\n\noptions:\n", usage, summary);
  for (const cli_option *o = options; o->name; o++) {
    char left[64];
    if (o->value)
      snprintf(left, sizeof(left), "--%s=%s", o->name, o->value);
    else
      snprintf(left, sizeof(left), "--%s", o->name);
    fprintf(out, "  %-30s %s\n", left, o->help);
  }
  fprintf(out, "  %-30s %s\n", "--help", "show this help");
}

bool cli_parse_bool(const char *option, const char *text, bool *out) {
  if (!strcmp(text, "true") || !strcmp(text, "1") || !strcmp(text, "on")) {
    *out = true;
    return true;
  }
  if (!strcmp(text, "false") || !strcmp(text, "0") || !strcmp(text, "off")) {
    *out = false;
    return true;
  }
  fprintf(stderr, "inferd: --%s: '%s' is not a boolean (true or false)\n", option, text);
  return false;
}

bool cli_parse_int(const char *option, const char *text, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno || end == text || *end || v < lo || v > hi) {
    fprintf(stderr, "inferd: --%s: '%s' is not an integer in [%ld, %ld]\n", option, text, lo, hi);
    return false;
  }
  *out = v;
  return true;
}

bool cli_parse_int_list(const char *option, const char *text, int *out, int cap, int *count) {
  *count = 0;
  const char *s = text;
  while (*s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || v < 1 || v > INT_MAX || (*end && *end != ',') || *count >= cap) {
      fprintf(stderr, "inferd: --%s: '%s' is not a list of up to %d positive integers\n", option, text, cap);
      return false;
    }
    out[(*count)++] = (int)v;
    s = *end ? end + 1 : end;
  }
  if (!*count) {
    fprintf(stderr, "inferd: --%s: empty list\n", option);
    return false;
  }
  return true;
}

inferd_error *cli_check_numeric(const inferd_plan *plan) {
  for (int pass = 0; pass < 2; pass++) {
    const int n = pass ? inferd_plan_output_count(plan) : inferd_plan_input_count(plan);
    for (int i = 0; i < n; i++) {
      inferd_tensor_info info;
      inferd_error *e = pass ? inferd_plan_output(plan, i, &info) : inferd_plan_input(plan, i, &info);
      if (e) return e;
      if (info.datatype == INFERD_TYPE_BYTES)
        return err_new(INFERD_ERROR_UNSUPPORTED,
                       "%s '%s' is BYTES (strings): this command handles numeric tensors only; serve the model "
                       "with `inferd serve` to send it strings",
                       pass ? "output" : "input", info.name);
    }
  }
  return NULL;
}

bool cli_parse_device(const char *text, inferd_device *out) {
  if (inferd_device_from_name(text, out)) return true;
  fprintf(stderr, "inferd: --device: '%s' is not a device (cpu, cuda or cuda:N)\n", text);
  return false;
}

bool cli_parse_precision(const char *text, inferd_precision *out) {
  if (inferd_precision_from_name(text, out) && *out != INFERD_PRECISION_DEFAULT) return true;
  fprintf(stderr, "inferd: --precision: '%s' is not a precision (fp32, tf32, fp16, bf16 or int8)\n", text);
  return false;
}

const char *cli_device_name(inferd_device device, char *buf, size_t size) {
  if (device.kind == INFERD_DEVICE_CUDA)
    snprintf(buf, size, "cuda:%d", device.ordinal);
  else
    snprintf(buf, size, "cpu");
  return buf;
}

bool cli_device_fits_backend(const char *command, inferd_device device, const char *backend) {
  if (device.kind != INFERD_DEVICE_CUDA || !backend || strcmp(backend, "cuda") == 0) return true;
  char name[32];
  fprintf(stderr, "inferd %s: --backend %s runs on the CPU, not on --device %s (leave --backend out)\n", command,
          backend, cli_device_name(device, name, sizeof(name)));
  return false;
}

inferd_error *cli_check_device(inferd_device device) {
  if (device.kind != INFERD_DEVICE_CUDA) return NULL;
  char name[32];
  cli_device_name(device, name, sizeof(name));
  int count = inferd_device_count(INFERD_DEVICE_CUDA);
  if (count <= 0) {
    char why[512];
    inferd_device_describe((inferd_device){.kind = INFERD_DEVICE_CUDA, .ordinal = -1}, why, sizeof(why));
    return err_new(INFERD_ERROR_UNAVAILABLE, "--device %s: no GPU is visible to this inferd (gpu: %s)", name, why);
  }
  if (device.ordinal >= count)
    return err_new(INFERD_ERROR_UNAVAILABLE, "--device %s: GPU %d does not exist (%d GPU%s visible: cuda:0 to cuda:%d)",
                   name, device.ordinal, count, count == 1 ? "" : "s", count - 1);
  return NULL;
}
