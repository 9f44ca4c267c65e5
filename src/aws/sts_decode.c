/*-------------------------------------------------------------------------
 *
 * sts_decode.c
 *	  Pure decoder of STS's answers (AssumeRole, AssumeRoleWithWebIdentity),
 *	  which the AWS credential chain (aws_credentials.c) reads through
 *	  credential_http.c.
 *
 * The same rules as for SQS's answers apply (sqs_decode.c), and the XML
 * goes through the same hardened libxml2 (aws_xml.c); as it carries
 * credentials, its parsed tree is wiped before libxml2 frees it.  Built as
 * frontend code too, for the fuzzer.
 *
 *-------------------------------------------------------------------------
 */
#ifdef FRONTEND
#include "postgres_fe.h"
#else
#include "postgres.h"
#endif

#include <libxml/tree.h>

#include "aws_xml.h"
#include "sqs_decode.h"
#include "sts_decode.h"

/*
 * Decode an STS answer: <AssumeRoleResponse> or
 * <AssumeRoleWithWebIdentityResponse> with its Credentials, or an
 * <ErrorResponse>.  The parsed tree is wiped before it is freed: it holds
 * the credentials.
 */
char *
sts_decode_xml(const char *data, size_t len, StsAnswer *result)
{
	xmlDoc	   *doc;
	char	   *error;
	xmlNode    *root = aws_xml_parse(data, len, NULL, &doc, &error);

	memset(result, 0, sizeof(StsAnswer));
	if (root && aws_xml_is_element(root, "ErrorResponse"))
	{
		xmlNode    *e = aws_xml_child(root, "Error");
		char	   *code = aws_xml_text(aws_xml_child(e, "Code"), "Code", &error);
		char	   *message = aws_xml_text(aws_xml_child(e, "Message"), "Message", &error);

		if (code)
			result->code = sqs_decode_clip(code, SQS_DECODE_MAX_TEXT_CHARS);
		if (message)
			result->message = sqs_decode_clip(message, SQS_DECODE_MAX_TEXT_CHARS);
	}
	else if (root && (aws_xml_is_element(root, "AssumeRoleResponse") ||
					  aws_xml_is_element(root, "AssumeRoleWithWebIdentityResponse")))
	{
		/* <ActionResponse><ActionResult><Credentials> */
		const char *name = (const char *) root->name;
		char	   *result_name = psprintf("%.*sResult",
										   (int) (strlen(name) - strlen("Response")), name);
		xmlNode    *credentials = aws_xml_child(aws_xml_child(root, result_name), "Credentials");

		result->access_key_id = aws_xml_text(aws_xml_child(credentials, "AccessKeyId"),
										"AccessKeyId", &error);
		result->secret_access_key = aws_xml_text(aws_xml_child(credentials, "SecretAccessKey"),
											"SecretAccessKey", &error);
		result->session_token = aws_xml_text(aws_xml_child(credentials, "SessionToken"),
										"SessionToken", &error);
		result->expiration = aws_xml_text(aws_xml_child(credentials, "Expiration"),
									 "Expiration", &error);
	}
	else if (root)
		error = psprintf("the response is <%s>, not an STS answer",
						 sqs_decode_clip((const char *) root->name, SQS_DECODE_MAX_TEXT_CHARS));
	if (doc)
		aws_xml_wipe_and_free(doc);
	return error;
}
