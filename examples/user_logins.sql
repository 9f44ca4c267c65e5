-- The target table sqs_ingest fills by default (sqs_ingest.target_table).
-- The extension never creates it: it is the user's data.
CREATE TABLE public.user_logins(
    user_id          varchar(128),
    device_type      varchar(32),
    masked_ip        varchar(256),
    masked_device_id varchar(256),
    locale           varchar(32),
    app_version      integer,
    create_date      date
);
