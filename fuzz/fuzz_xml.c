/* fuzz_xml.c: libFuzzer target for the XML (Query protocol) decoders */
#include "postgres_fe.h"

#include "decoders.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_decoders(&xml_decoders, (const char *) data, size);
	return 0;
}
