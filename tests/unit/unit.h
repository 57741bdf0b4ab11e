/* cmocka glue shared by the unit tests. */
#ifndef BW_UNIT_H
#define BW_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#endif
