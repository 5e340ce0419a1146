# Writes the text of INPUT as a C++ raw string literal into OUTPUT.
file(READ ${INPUT} text)
file(WRITE ${OUTPUT} "R\"moe_header(${text})moe_header\"\n")
