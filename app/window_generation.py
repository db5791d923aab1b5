"""The window's generation: the Generate panel, streaming tokens, stop, stepping.

A mixin of :class:`app.main_window.MainWindow`. The planner runs the generation (each token
reaches the panel as a partial result); a stop (Esc, the Stop button) ends it early and
keeps the tokens; the finished run replaces the shown one and steps to its last token.
"""

from __future__ import annotations


class GenerationMixin:
    """Generation in the main window."""

    def generate(self):
        """Let the model answer the Generate panel's prompt; tokens stream into the panel."""
        panel = self.generation_panel
        prompt = panel.prompt()
        if not prompt.strip():
            self.show_error("There is no prompt: type what the model should answer in the Generate panel.")
            return None
        self.generate_dock.raise_()
        self.session.set_model_source(self.current_source())
        panel.start_stream()
        panel.set_busy(True)
        task, self._stop_generation = self.planner.generate(prompt, panel.settings(), on_token=panel.add_token)
        self.host.update_busy()
        return task

    def _on_generated(self, result) -> None:
        self.generation_panel.set_busy(False)
        self._on_analysed(result)

    def _on_result_for_generation(self, result) -> None:
        generation = result.run.generation if result is not None else None
        panel = self.generation_panel
        facts = result.run.model if result is not None else None
        if facts is not None:
            panel.set_model(facts.can_generate, facts.has_chat_template)
        if generation is None:
            panel.set_steps(())
        else:
            panel.set_busy(False)
            panel.set_steps(generation.steps, generation.text, generation.stop_reason)

    def _on_step_chosen(self, index: int) -> None:
        if self.session.run is not None and self.session.run.generation is not None:
            self.session.set_generation_step(index)
