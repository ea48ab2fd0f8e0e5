#ifndef HOOKGUARD_CLIBCRYPTO_SHIM_H
#define HOOKGUARD_CLIBCRYPTO_SHIM_H
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* An HMAC context keyed with `key` under the digest named `digest` ("SHA256"),
 * ready for EVP_MAC_CTX_dup; NULL on failure. OSSL_PARAM's constructors are
 * awkward from Swift, hence this helper. */
static inline EVP_MAC_CTX *hookguard_hmac_context(const char *digest, const unsigned char *key, size_t key_length) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) return NULL;
    EVP_MAC_CTX *context = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context keeps its own reference */
    if (context == NULL) return NULL;
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0),
        OSSL_PARAM_construct_end(),
    };
    static const unsigned char empty = 0;
    if (!EVP_MAC_init(context, key_length ? key : &empty, key_length, params)) {
        EVP_MAC_CTX_free(context);
        return NULL;
    }
    return context;
}
#endif
