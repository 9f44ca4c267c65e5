/* sqs_ingest--1.0--1.1.sql */

\echo Use "ALTER EXTENSION sqs_ingest UPDATE TO '1.1'" to load this file. \quit
