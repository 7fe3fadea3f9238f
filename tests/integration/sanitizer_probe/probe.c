/* A stand-in for a faulty inferd, built with the sanitizers by
 * test_sanitizer_checks.py: it commits the fault its argument names, so the
 * tests can check that the fixtures turn each kind of report into a failure.
 * "clean" and "huge" exit 0 having done nothing wrong. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kept out of the optimizer's sight so that every fault happens at run time. */
static volatile int one = 1;

int main(int argc, char **argv) {
  const char *fault = argc > 1 ? argv[1] : "clean";
  if (strcmp(fault, "leak") == 0) {
    char *lost = malloc(64);
    lost[0] = (char)one;
    lost = NULL;
    return 0;
  }
  if (strcmp(fault, "overflow") == 0) {
    char *small = malloc(4);
    small[3 + one] = 1;
    free(small);
    return 0;
  }
  if (strcmp(fault, "huge") == 0) {
    /* No fault: an allocation that cannot be had returns NULL (ASan then
     * warns in its report file), as a server refusing a client's size does. */
    void *huge = malloc((size_t)1 << 45);
    printf("%s\n", huge ? "allocated" : "refused");
    free(huge);
    return 0;
  }
  if (strcmp(fault, "undefined") == 0) {
    int big = INT_MAX - 1 + one;
    return big + one > 0 ? 0 : 2;
  }
  printf("clean\n");
  return 0;
}
