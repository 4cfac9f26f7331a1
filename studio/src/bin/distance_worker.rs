//! The studio's distance worker, a trunk `data-type="worker"` binary: it keeps the focused
//! run's tasks and answers jobs of task pairs with their distances
//! ([`studio::distance_job`], spawned by [`studio::distance_workers`]).

use std::cell::RefCell;

use studio::distance_job::{WorkerTasks, answer_message, is_job, read_tasks};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

fn main() {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let tasks: RefCell<Result<WorkerTasks, String>> =
        RefCell::new(Err("the page sent no tasks".to_owned()));
    let reply = scope.clone();
    let on_message = Closure::<dyn Fn(MessageEvent)>::new(move |event: MessageEvent| {
        let message = event.data();
        let answer = if is_job(&message) {
            match &mut *tasks.borrow_mut() {
                Ok(tasks) => tasks.solve(&message).map(Some),
                Err(error) => Err(error.clone()),
            }
        } else {
            let mut read =
                read_tasks(&message).map(|(clouds, opening)| WorkerTasks::new(clouds, opening));
            // Before the answer, so that a worker the page counts as ready runs optimised code.
            if let Ok(tasks) = &mut read {
                tasks.warm_up();
            }
            let answer = read.as_ref().map(|_| None).map_err(Clone::clone);
            *tasks.borrow_mut() = read;
            answer
        };
        reply
            .post_message(&answer_message(answer))
            .expect("an answer of typed arrays can be posted");
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    // Messages posted before the handler existed were dropped (the wasm loads asynchronously):
    // this first answer tells the page that the worker listens.
    scope
        .post_message(&answer_message(Ok(None)))
        .expect("an empty answer can be posted");
}
