/*
 * A PKCS#11 module that forwards every call to another module (REAL_MODULE,
 * SoftHSM2) and appends the name of each key operation that reaches it to
 * COUNT_FILE, one line per call: tests count HSM operations with it, the way
 * they count HTTP requests with a transport. Both paths are compiled in
 * (see softhsm.Token.CountingModule).
 */
#include <dlfcn.h>
#include <stdio.h>
#include "pkcs11go.h"

static CK_FUNCTION_LIST counting;
static CK_FUNCTION_LIST_PTR real;

static void count(const char *name) {
	FILE *f = fopen(COUNT_FILE, "a");
	if (f != NULL) {
		fprintf(f, "%s\n", name);
		fclose(f);
	}
}

static CK_RV counting_UnwrapKey(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k,
		CK_BYTE_PTR wrapped, CK_ULONG n, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count_, CK_OBJECT_HANDLE_PTR out) {
	count("C_UnwrapKey");
	return real->C_UnwrapKey(s, m, k, wrapped, n, tmpl, count_, out);
}

static CK_RV counting_WrapKey(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE kek,
		CK_OBJECT_HANDLE key, CK_BYTE_PTR out, CK_ULONG_PTR n) {
	count("C_WrapKey");
	return real->C_WrapKey(s, m, kek, key, out, n);
}

static CK_RV counting_Decrypt(CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG n, CK_BYTE_PTR out, CK_ULONG_PTR outn) {
	count("C_Decrypt");
	return real->C_Decrypt(s, in, n, out, outn);
}

static CK_RV counting_Encrypt(CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG n, CK_BYTE_PTR out, CK_ULONG_PTR outn) {
	count("C_Encrypt");
	return real->C_Encrypt(s, in, n, out, outn);
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
	if (real == NULL) {
		void *h = dlopen(REAL_MODULE, RTLD_NOW);
		if (h == NULL) {
			return CKR_GENERAL_ERROR;
		}
		CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList");
		if (get == NULL || get(&real) != CKR_OK) {
			return CKR_GENERAL_ERROR;
		}
		counting = *real;
		counting.C_GetFunctionList = C_GetFunctionList;
		counting.C_UnwrapKey = counting_UnwrapKey;
		counting.C_WrapKey = counting_WrapKey;
		counting.C_Decrypt = counting_Decrypt;
		counting.C_Encrypt = counting_Encrypt;
	}
	*list = &counting;
	return CKR_OK;
}
