/*-------------------------------------------------------------------------
 *
 * security.h
 *	  Who the target table's code runs as, and statements immune to
 *	  search_path.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SQS_INGEST_SECURITY_H
#define SQS_INGEST_SECURITY_H

/* what security_enter() changed, for security_leave() to restore */
typedef struct SecurityScope
{
	Oid			saved_userid;
	int			saved_sec_context;
	int			guc_nest_level;
} SecurityScope;

extern int	security_pin_search_path(void);
extern void security_unpin_search_path(int nest_level);
extern Oid	ingest_role_for_target(Oid relid);
extern Oid	security_relation_owner(Oid relid);
extern void security_enter(SecurityScope *scope, Oid role);
extern void security_leave(SecurityScope *scope);
extern void security_check_target_privilege(Oid relid, const char *relname);
extern void security_warn_superuser_target(Oid relid);
extern void security_check_pipeline_endpoint(const char *queue_url,
											 const char *endpoint);
extern void security_check_mask_privilege(Oid role, const char *pipeline);

#endif							/* SQS_INGEST_SECURITY_H */
