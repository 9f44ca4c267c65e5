/* fuzz_json.c: libFuzzer target for the JSON decoders */
#include "postgres_fe.h"

#include "decoders.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_decoders(&json_decoders, (const char *) data, size);
	return 0;
}
