/* sqs_ingest--1.1--1.2.sql */

\echo Use "ALTER EXTENSION sqs_ingest UPDATE TO '1.2'" to load this file. \quit
