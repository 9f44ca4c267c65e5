/*-------------------------------------------------------------------------
 *
 * security.h
 *	  Who the target table's code runs as, statements immune to
 *	  search_path, and the extension's own tables read as their owner.
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

/* SPI access to the extension's tables as their owner */
typedef struct CatalogAccess
{
	SecurityScope scope;
} CatalogAccess;

extern int	security_pin_search_path(void);
extern void security_unpin_search_path(int nest_level);
extern Oid	ingest_role_for_target(Oid relid);
extern Oid	security_relation_owner(Oid relid);
extern void security_enter(SecurityScope *scope, Oid role);
extern void security_leave(SecurityScope *scope);
extern Oid	catalog_relid(void);
extern void catalog_begin(CatalogAccess *access);
extern void catalog_end(CatalogAccess *access);
extern void security_check_target_privilege(Oid relid, const char *relname);
extern void security_warn_superuser_target(Oid relid);
extern void security_check_pipeline_endpoint(const char *queue_url,
											 const char *endpoint);
extern void security_check_mask_privilege(Oid role, const char *pipeline);

#endif							/* SQS_INGEST_SECURITY_H */
