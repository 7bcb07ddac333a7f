CREATE TABLE "batch_log" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"batch_id" text NOT NULL,
	"event" text NOT NULL,
	"username" text,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"total_ms" integer,
	"profile_ms" integer,
	"stories_ms" integer,
	"requests" integer,
	"session_label" text,
	"proxy_label" text,
	"attempt" integer,
	"outcome" text,
	"error_class" text,
	"error_code" text,
	"error_message" text,
	"cause" jsonb,
	"data" jsonb
);
--> statement-breakpoint
CREATE TABLE "batches" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text,
	"state" text DEFAULT 'queued' NOT NULL,
	"total" integer DEFAULT 0 NOT NULL,
	"done" integer DEFAULT 0 NOT NULL,
	"count_active" integer DEFAULT 0 NOT NULL,
	"count_none" integer DEFAULT 0 NOT NULL,
	"count_private" integer DEFAULT 0 NOT NULL,
	"count_not_found" integer DEFAULT 0 NOT NULL,
	"count_failed" integer DEFAULT 0 NOT NULL,
	"duplicates" integer DEFAULT 0 NOT NULL,
	"rejected" integer DEFAULT 0 NOT NULL,
	"sealed" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "items" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"batch_id" text NOT NULL,
	"seq" bigint NOT NULL,
	"username" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"story_count" integer,
	"latest_story_at" timestamp with time zone,
	"expires_at" timestamp with time zone,
	"user_id" text,
	"checked_at" timestamp with time zone,
	"attempts" integer DEFAULT 0 NOT NULL,
	"cached" boolean DEFAULT false NOT NULL,
	"error" text
);
--> statement-breakpoint
CREATE TABLE "proxies" (
	"id" serial PRIMARY KEY NOT NULL,
	"label" text NOT NULL,
	"url" text NOT NULL,
	"password_enc" text,
	"status" text DEFAULT 'active' NOT NULL,
	"usage_count" bigint DEFAULT 0 NOT NULL,
	"last_used" timestamp with time zone,
	"cooldown_until" timestamp with time zone,
	"last_error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "proxies_label_unique" UNIQUE("label")
);
--> statement-breakpoint
CREATE TABLE "sessions" (
	"id" serial PRIMARY KEY NOT NULL,
	"label" text NOT NULL,
	"cookies_enc" text NOT NULL,
	"ds_user_id" text,
	"proxy_id" integer,
	"status" text DEFAULT 'active' NOT NULL,
	"rate" text,
	"burst" integer,
	"usage_count" bigint DEFAULT 0 NOT NULL,
	"last_used" timestamp with time zone,
	"rate_limited" boolean DEFAULT false NOT NULL,
	"cooldown_until" timestamp with time zone,
	"last_error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "sessions_label_unique" UNIQUE("label")
);
--> statement-breakpoint
ALTER TABLE "batch_log" ADD CONSTRAINT "batch_log_batch_id_batches_id_fk" FOREIGN KEY ("batch_id") REFERENCES "public"."batches"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "items" ADD CONSTRAINT "items_batch_id_batches_id_fk" FOREIGN KEY ("batch_id") REFERENCES "public"."batches"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sessions" ADD CONSTRAINT "sessions_proxy_id_proxies_id_fk" FOREIGN KEY ("proxy_id") REFERENCES "public"."proxies"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "batch_log_batch_idx" ON "batch_log" USING btree ("batch_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "items_batch_username_uq" ON "items" USING btree ("batch_id","username");--> statement-breakpoint
CREATE INDEX "items_batch_seq_idx" ON "items" USING btree ("batch_id","seq");--> statement-breakpoint
CREATE INDEX "items_batch_pending_idx" ON "items" USING btree ("batch_id") WHERE "items"."status" = 'pending';