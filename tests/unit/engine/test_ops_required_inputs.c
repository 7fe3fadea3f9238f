/*
 * Absent inputs (ONNX's empty input name) across the whole op table: for
 * every op, each required input left out is a load error naming the node
 * and the input (Clip, the global pools and Sub dereferenced NULL in their
 * shape rules before); and every rule, at several opsets, meets its optional
 * inputs left out without crashing, answering either a shape or an error
 * naming the node.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit/engine/ops_test.h"

enum { PROBE_MAX_INPUTS = 8 };

/* A graph with one node of `op` over `n_in` inputs, input k absent where
 * absent[k]; present inputs are FP32 [1,2,4,4] graph inputs. */
static ir_graph *probe_graph(ir_op op, int64_t opset, int n_in, const bool *absent, int n_out, int *node) {
  ir_graph *g = t_graph(opset);
  int ins[PROBE_MAX_INPUTS];
  for (int k = 0; k < n_in; k++) {
    char name[16];
    snprintf(name, sizeof(name), "in%d", k);
    ins[k] = absent[k] ? -1 : t_input(g, name, INFERD_TYPE_FP32, DIMS(1, 2, 4, 4));
  }
  *node = t_node(g, op, "probe", n_in, ins, n_out);
  return g;
}

static int probe_inputs(const ir_op_info *info) {
  return info->max_inputs < PROBE_MAX_INPUTS ? info->max_inputs : PROBE_MAX_INPUTS;
}

static void test_every_required_input_left_out_is_an_error_naming_the_node(void **state) {
  (void)state;
  int checked = 0;
  for (int op = IR_OP_INVALID + 1; op < IR_OP_COUNT_; op++) {
    const ir_op_info *info = ir_op_get((ir_op)op);
    int n_in = info->required_inputs > info->min_inputs ? probe_inputs(info) : info->min_inputs;
    for (int k = 0; k < n_in && k < info->required_inputs; k++) {
      bool absent[PROBE_MAX_INPUTS] = {0};
      absent[k] = true;
      int node;
      ir_graph *g = probe_graph((ir_op)op, info->min_opset > 13 ? info->min_opset : 13, n_in, absent,
                                info->min_outputs, &node);
      inferd_error *e = ir_infer_node(g, node);
      char expected[96];
      snprintf(expected, sizeof(expected), "node 'probe' (%s): input %d is required", info->name, k);
      if (!e || !strstr(inferd_error_message(e), expected))
        fail_msg("%s with input %d absent: %s", info->name, k, e ? inferd_error_message(e) : "accepted");
      inferd_error_delete(e);
      ir_graph_delete(g);
      checked++;
    }
  }
  assert_true(checked >= IR_OP_COUNT_ - 2); /* every op but Constant has at least one */
}

static void test_optional_inputs_left_out_never_crash_a_rule(void **state) {
  (void)state;
  static const int64_t opsets[] = {1, 6, 11, 13, 18};
  for (int op = IR_OP_INVALID + 1; op < IR_OP_COUNT_; op++) {
    const ir_op_info *info = ir_op_get((ir_op)op);
    if (op == IR_OP_Constant) continue; /* made by the importer, never inferred */
    for (size_t o = 0; o < sizeof(opsets) / sizeof(opsets[0]); o++) {
      if (opsets[o] < info->min_opset) continue;
      /* Every subset of the optional inputs left out, the required present. */
      int n_in = probe_inputs(info), optional = n_in - info->min_inputs;
      for (unsigned mask = 0; mask < (1u << optional); mask++) {
        bool absent[PROBE_MAX_INPUTS] = {0};
        for (int k = 0; k < optional; k++) absent[info->min_inputs + k] = (mask >> k) & 1;
        int node;
        ir_graph *g = probe_graph((ir_op)op, opsets[o], n_in, absent, info->min_outputs, &node);
        inferd_error *e = ir_infer_node(g, node);
        if (e && !strstr(inferd_error_message(e), "node 'probe'"))
          fail_msg("%s (opset %lld): an error not naming the node: %s", info->name, (long long)opsets[o],
                   inferd_error_message(e));
        inferd_error_delete(e);
        ir_graph_delete(g);
      }
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_required_input_left_out_is_an_error_naming_the_node),
      cmocka_unit_test(test_optional_inputs_left_out_never_crash_a_rule),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
