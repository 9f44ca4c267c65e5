/*-------------------------------------------------------------------------
 *
 * openpgp.h
 *	  OpenPGP encryption of single values to an RSA public key, and their
 *	  decryption with the matching secret key (RFC 4880).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_OPENPGP_H
#define SQS_INGEST_OPENPGP_H

/* the longest value encrypted: a longer one is a dead letter */
#define OPENPGP_MAX_PLAINTEXT (64 * 1024)

/* an OpenPGP key id: the low 64 bits of the v4 fingerprint */
#define OPENPGP_KEY_ID_LEN 8

/* a public key ready to encrypt to, freed with its memory context */
typedef struct OpenPgpKey OpenPgpKey;

extern OpenPgpKey *openpgp_public_key_parse(const char *armored, int len,
											const char *source);
extern bytea *openpgp_encrypt(const OpenPgpKey *key, const char *data, int len);
extern char *openpgp_decrypt(const char *message, int message_len,
							 const char *secret_key, int secret_key_len,
							 int *len, char **key_id);

#endif							/* SQS_INGEST_OPENPGP_H */
