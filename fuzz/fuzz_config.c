/* The config parser on arbitrary text, for every subcommand's view of
 * the file: it must fail cleanly with a bounded message, never overrun a
 * field, whatever the line lengths, sections and keys. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "app/options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static masq_opts o; /* ~70 KiB: not on the stack */
  static const masq_cmd cmds[] = {MASQ_CMD_SERVER, MASQ_CMD_FORWARD, MASQ_CMD_GENCERT};
  char err[256];
  /* The string API stops at the first NUL, as a file with one is refused
   * before parsing. */
  char *text = malloc(size + 1);
  if (text == NULL) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
    masq_opts_init(&o, cmds[i]);
    memset(err, 0, sizeof(err));
    if (masq_opts_load_string(&o, text, err, sizeof(err)) != 0) {
      /* A failure always explains itself on one line. */
      if (err[0] == '\0' || memchr(err, '\n', sizeof(err)) != NULL) abort();
      continue;
    }
    if (o.ntokens > MASQ_MAX_TOKENS || o.nallow > MASQ_POLICY_MAX || o.nudp > MASQ_MAX_FORWARDS)
      abort();
    if (memchr(o.listen, '\0', sizeof(o.listen)) == NULL ||
        memchr(o.udp_template, '\0', sizeof(o.udp_template)) == NULL ||
        memchr(o.proxy, '\0', sizeof(o.proxy)) == NULL)
      abort();
  }
  free(text);
  return 0;
}
