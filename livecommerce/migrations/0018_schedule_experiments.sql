-- Scheduled goods pushes that A/B test their creative (issue 17, "Experiments on live bubbles"):
-- the experiment and one creative per variant (JSON list in the experiment's variant order,
-- each {"title"?, "image"?, "price_display"?, "show_seconds"?}). When the schedule fires the
-- experiment's current definition is read; one not running then pushes the control creative.

ALTER TABLE live_schedules
    ADD COLUMN experiment_id bigint REFERENCES experiments (id),
    ADD COLUMN creatives     jsonb,
    ADD CONSTRAINT live_schedules_experiment_check
        CHECK ((experiment_id IS NULL) = (creatives IS NULL));
