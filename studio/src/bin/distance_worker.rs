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
        let job = is_job(&message);
        let answer = if job {
            match &mut *tasks.borrow_mut() {
                Ok(tasks) => tasks.solve(&message).map(Some),
                Err(error) => Err(error.clone()),
            }
        } else {
            let read = read_tasks(&message).map(WorkerTasks::new);
            let answer = read.as_ref().map(|_| None).map_err(Clone::clone);
            *tasks.borrow_mut() = read;
            answer
        };
        reply
            .post_message(&answer_message(answer))
            .expect("an answer of typed arrays can be posted");
        // After the answer, so that the page does not wait for it.
        if !job && let Ok(tasks) = &mut *tasks.borrow_mut() {
            tasks.warm_up();
        }
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    // Messages posted before the handler existed were dropped (the wasm loads asynchronously):
    // this first answer tells the page that the worker listens.
    scope
        .post_message(&answer_message(Ok(None)))
        .expect("an empty answer can be posted");
}
